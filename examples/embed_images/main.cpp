// Load DINOv3, embed two images, print the shape of their patch features.
#include <vidfuse/vidfuse.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: embed_images DINOV3_DIR IMAGE IMAGE\n";
    return 2;
  }
  try {
    vidfuse::SemanticExtractor dinov3(argv[1]);  // device "auto": a GPU when there is one
    vidfuse::SemanticFeatures f = dinov3.embed_files({argv[2], argv[3]});
    std::cout << "patch_tokens " << f.patch_tokens.sizes() << " cls " << f.cls.sizes() << " on "
              << dinov3.device() << "\n";
    return 0;
  } catch (const vidfuse::Error& e) {
    std::cerr << "embed_images: " << e.what() << "\n";
    return 1;
  }
}
