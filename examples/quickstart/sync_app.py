# sync_app.py: the App and its handlers, loaded by workers with --app sync_app:app
from chunksync import App, ChunkContext

app = App("sqlite:///sync.db")          # or "postgresql://user@host/dbname"

@app.handler("pages")                     # processes queues whose source is pages://...
def fetch_page(ctx: ChunkContext) -> int:
    page = ctx.payload["page"]
    ...                                   # raise on failure: it is categorized and retried
    ctx.save_checkpoint({"cursor": page}) # optional: a retry resumes from here
    return 100                            # items processed, for the health metrics
