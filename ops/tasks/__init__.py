"""Invoke collections; tasks.py only assembles them."""
