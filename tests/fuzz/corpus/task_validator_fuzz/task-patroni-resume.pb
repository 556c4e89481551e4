
t-patroni-resume‚