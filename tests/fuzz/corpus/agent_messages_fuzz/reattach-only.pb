ÎË
t-configure-s3Z¶
m1mainpT
s3.eu-west-1.amazonaws.com»pghaul-backups"	eu-west-1*host:/srv/pghaul/ca.crt"/pgbackrest2aes-256-cbc"1
AKIAEXAMPLEexample-secretexample-passphrase2zst8"
t-configure-s3