"""The dashboard's page modules; each returns the Starlette routes of one section."""
