"""Several nodes as one service: PostgreSQL holds the state, NATS (JetStream key-value buckets and
subjects) holds who is alive, which node holds which room's call, and the notices between them.

- ``bus``: the NATS connection, scoped to a cluster name (subjects and buckets).
- ``registry``: each node's entry (health, load), kept alive by a TTL lease.
- ``placement``: room -> node leases, created atomically, renewed by their owner, taken over
  once their owner's entry has expired. The policy that picks a node is one function.
- ``notices``: room, roster and token changes to every node's call host.
- ``agent``: what a call host does as a node: publish its entry, renew its leases.

Nothing here decides who may do what in a call; that stays in ``calls``.
"""
