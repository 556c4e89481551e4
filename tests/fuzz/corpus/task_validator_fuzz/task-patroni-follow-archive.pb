
t-patroni-follow-archive‚	