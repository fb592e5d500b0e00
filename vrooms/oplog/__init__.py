"""The operation log: one record per Rooms API call, shaped like ACS's ACSRoomsIncomingOperations."""
