"""The Salesforce backend (simple-salesforce).

`backend` holds the CRM backend (Collections upserts, re-login, pauses),
`auth` the login flows, `schema` the expected objects and fields, `check`
the describe-based `mailsync check`, `errors` the errorCode classification.
"""

from mailsync.crm.salesforce.backend import SalesforceBackend, open_salesforce

__all__ = ["SalesforceBackend", "open_salesforce"]
