"""`inv secrets.rotate`: a password changed on its server and in every client, in place."""
