"""The Seller Data Feeds (SDDS): billing, agreements and accounts CSV files.

- `csvfeed`: the streaming, header-driven reader (RFC 4180, strict values);
- `versioning`: which revision of a row is current (contract section 7);
- `compute`: the pure money computation (rows in, CRM touches out);
- `store`: the compact per-key store of current revisions in the state DB;
- `feedsync`: one pass (changed files -> store -> records -> record outbox);
- `files`: feed files on disk (`mailsync import`), and the S3 source lives in
  `mailsync.aws.sdds_source`.
"""
