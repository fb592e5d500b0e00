"""Rooms: the ACS Rooms REST API (rooms, validity windows, invite-only rosters)."""
