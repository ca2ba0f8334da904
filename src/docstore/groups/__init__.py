"""Groups: named sets of users that documents and folders can be shared with."""
