
t-configure-posixZK
m1main.

/srv/pghaul/repo"/srv/pghaul/repo(2none(2lz4Bmain-new