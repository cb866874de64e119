"""The 33 feature definitions, the point-in-time builder, upcoming slates and the backfill."""
