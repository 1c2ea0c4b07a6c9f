"""The central authority: registry of members and nodes, registration, TUF publishing."""
