
t-patroni-stop‚