"""What the API does, in plain functions over a SQLAlchemy session (the GraphQL resolvers stay thin)."""
