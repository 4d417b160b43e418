// hiredis, the C client of Redis (Debian: libhiredis-dev, 0.14 on Debian 12): its blocking API
// (redisConnectWithTimeout, redisAppendCommandArgv, redisGetReply). Cluster routing is ours
// (Sources/VoCoStoreRedis/ClusterRouter.swift): hiredis speaks to one node.
#include <sys/time.h>
#include <hiredis/hiredis.h>
