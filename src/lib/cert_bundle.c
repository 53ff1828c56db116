/* cert_bundle.c — to be written. */
#include "config.h"
