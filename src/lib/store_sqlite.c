/* store_sqlite.c — to be written. */
#include "config.h"
