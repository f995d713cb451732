"""Input sources: IMAP, a local folder / Maildir, an SQS queue."""
