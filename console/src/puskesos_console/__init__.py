"""The Puskesos web console: a backend-for-frontend serving server-rendered pages (see console/README.md)."""
