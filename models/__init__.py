"""Scorers: each turns an order and its registrant's profile into scores and reasons."""
