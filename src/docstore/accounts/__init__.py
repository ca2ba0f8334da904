"""Proven addresses and mailed links: verification, invitations, password reset, email change."""
