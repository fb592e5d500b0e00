"""Events: what happened in rooms and calls, delivered to webhooks as Azure Event Grid does.

State changes append to an outbox in their own transaction (``repository.append``);
the dispatcher process fans them out to subscriptions and delivers them, at least
once, in order per call or room, with Event Grid's retry policy and a dead-letter store.
"""
