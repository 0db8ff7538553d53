# enqueue.py: create a queue, then drain it here (or leave it to `chunksync worker`)
from sync_app import app

queue = app.create_queue("pages://api.example.com", [{"page": n} for n in range(100)])
app.worker(concurrency=4).run_until_done([queue.id])
