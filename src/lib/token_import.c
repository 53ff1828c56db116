/* token_import.c — to be written. */
#include "config.h"
