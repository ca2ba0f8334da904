"""The trash: listing trashed items, purging them by hand and after the trash retention."""
