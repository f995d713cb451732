"""AWS adapters: the SQS source (SNS and EventBridge deliveries), its admission
policy and client, and the Marketplace API enrichment."""
