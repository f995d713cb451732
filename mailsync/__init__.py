"""mailsync: AWS Marketplace seller notifications into CRM records."""

__version__ = "0.1.0"
