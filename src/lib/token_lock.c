/* token_lock.c — to be written. */
#include "config.h"
