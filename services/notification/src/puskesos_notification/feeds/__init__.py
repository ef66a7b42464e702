"""Feeds for external subscribers: the notification service relays each declared subscriber's events,
made safe for its account, into its NATS feed or to its webhook (see ``supervisor``)."""
