"""Microsoft Graph: MSAL tokens, the HTTP client, the source and target directories."""
