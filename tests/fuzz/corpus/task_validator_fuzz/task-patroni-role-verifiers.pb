
t-patroni-role-verifiers‚