"""Operations: backup, restore and status of a docstore installation (the `docstore backup`,
`restore` and `status` commands)."""
