"""The CRM side: the outbox, the pure event-to-record mapping, merge rules, backends."""
