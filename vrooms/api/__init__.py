"""HTTP adapters shared by every domain: versions, bodies, errors, paging, repeatability."""
