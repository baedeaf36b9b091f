"""Off-box backups of what a rebuilt commune server needs (restic), their restore check, and the restore.

A backup holds a consistent copy of the database, the coordinator's secrets and settings (operator and
read tokens, TURN and province secrets, the web session key, the TLS files) and a manifest of them. It goes
encrypted to a second place (restic over SFTP to another host, or a mounted share); every backup is restored
to a scratch folder and checked before it counts as good.
"""
