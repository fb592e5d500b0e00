"""Call Automation: server-side apps drive room calls through the ACS Call Automation API."""
