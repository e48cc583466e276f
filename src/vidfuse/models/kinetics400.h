// Kinetics-400's class names, shipped with vidfuse (models/data/kinetics400_classes.txt, compiled
// in): the label order of DeepMind's label map, which the released I3D heads use.
#pragma once
#include <string>
#include <vector>

namespace vidfuse::models {

const std::vector<std::string>& kinetics400_classes();  // 400 names, index = class

}  // namespace vidfuse::models
