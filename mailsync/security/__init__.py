"""Authenticity checks: DKIM and sender policy for email, SNS signatures."""
