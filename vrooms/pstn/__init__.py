"""Telephone legs over a SIP trunk: dial-out, dial-in, DTMF (sippy for SIP, rtpengine for media)."""
