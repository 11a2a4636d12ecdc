"""bell package."""
