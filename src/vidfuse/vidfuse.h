// vidfuse's public C++ API, all of it: `#include <vidfuse/vidfuse.h>` and link vidfuse::vidfuse.
// Everything else under vidfuse/ is internal and not installed.
#pragma once
#include "vidfuse/api/classifier.h"
#include "vidfuse/api/extraction.h"
#include "vidfuse/api/motion_extractor.h"
#include "vidfuse/api/semantic_extractor.h"
#include "vidfuse/api/store.h"
#include "vidfuse/api/video.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
