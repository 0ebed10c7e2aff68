"""Who is asking (SMART Backend Services): clients (the registry of API clients), tokens
(the token endpoint and access-token checks), jwks (client key sets fetched by URL)."""
