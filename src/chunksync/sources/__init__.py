"""Sources: IMAP, Maildir, mbox, the demo source, and handlers users write."""
