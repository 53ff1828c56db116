/* secret.c — to be written. */
#include "config.h"
