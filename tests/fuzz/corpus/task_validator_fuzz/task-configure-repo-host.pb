
t-configure-repo-hostZ
m1mainƒl
backup.example.internalğA/srv/pghaul/tls/ca.crt"/srv/pghaul/tls/client.crt*/srv/pghaul/tls/client.key"/var/lib/pgbackrest