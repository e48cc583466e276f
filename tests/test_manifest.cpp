// Manifest*: every manifest format read_manifest detects, and malformed ones giving errors that
// name the file and the line or entry.
#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "vidfuse/data/manifest.h"

using namespace vidfuse;
using namespace vidfuse::test;

namespace {
void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}
void touch(const std::string& path) { write(path, "x"); }
}  // namespace

TEST(Manifest, SSv2JsonWithLabelsAndVideosFolder) {
  ScratchDir d;
  write(d / "labels.json",
        R"({"Pushing something from left to right": "1", "Holding something": "0"})");
  write(d / "train.json",
        R"([{"id": "17", "label": "holding a pen", "template": "Holding [something]",
             "placeholders": ["a pen"]},
            {"id": "4", "template": "Pushing [something] from left to right"},
            {"id": 99, "template": "Holding [something]"}])");
  touch(d / "videos/17.webm");
  touch(d / "videos/4.mp4");  // any video extension is found
  const auto m = data::read_manifest(d / "train.json");
  ASSERT_EQ(m.videos.size(), 3u);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"Holding something",
                                                     "Pushing something from left to right"}));
  EXPECT_EQ(m.videos[0].id, "17");
  EXPECT_EQ(m.videos[0].label, 0);
  EXPECT_EQ(m.videos[0].path, d / "videos/17.webm");
  EXPECT_EQ(m.videos[1].label, 1);
  EXPECT_EQ(m.videos[1].path, d / "videos/4.mp4");
  EXPECT_EQ(m.videos[2].id, "99");  // integer ids are accepted
  EXPECT_NE(m.source.find("ssv2"), std::string::npos);

  // test.json: ids only → unlabelled; an explicit videos folder.
  write(d / "test.json", R"([{"id": "17"}, {"id": "4"}])");
  const auto t = data::read_manifest(d / "test.json", d / "videos");
  ASSERT_EQ(t.videos.size(), 2u);
  EXPECT_EQ(t.videos[0].label, -1);
  EXPECT_EQ(t.videos[1].path, d / "videos/4.mp4");
}

TEST(Manifest, SSv2ErrorsNameTheFileAndEntry) {
  ScratchDir d;
  write(d / "labels.json", R"({"Holding something": "0"})");
  write(d / "a.json", R"([{"id": "1", "template": "Holding [something]"}, {"template": "x"}])");
  EXPECT_THROW_WITH(data::read_manifest(d / "a.json"), d / "a.json", "entry 2", "missing \"id\"");
  write(d / "b.json", R"([{"id": "1", "template": "Dropping [something]"}])");
  EXPECT_THROW_WITH(data::read_manifest(d / "b.json"), d / "b.json", "entry 1 (id '1')",
                    "Dropping something", "labels.json");
  write(d / "c.json", R"([{"id": "1"}, )");
  EXPECT_THROW_WITH(data::read_manifest(d / "c.json"), d / "c.json", "not valid JSON");
  write(d / "d.json", R"({"id": "1"})");
  EXPECT_THROW_WITH(data::read_manifest(d / "d.json"), d / "d.json", "array");
  write(d / "e.json", R"([{"id": "1"}, {"id": "1"}])");
  EXPECT_THROW_WITH(data::read_manifest(d / "e.json"), d / "e.json", "entry 2", "duplicate",
                    "entry 1");
  ScratchDir n;  // templates without labels.json
  write(n / "train.json", R"([{"id": "1", "template": "Holding [something]"}])");
  EXPECT_THROW_WITH(data::read_manifest(n / "train.json"), "entry 1", "no labels.json");
  write(d / "bad_labels/labels.json", R"({"Holding something": "zero"})");
  write(d / "bad_labels/train.json", R"([{"id": "1", "template": "Holding [something]"}])");
  EXPECT_THROW_WITH(data::read_manifest(d / "bad_labels/train.json"), "labels.json",
                    "Holding something", "not an integer");
}

TEST(Manifest, KineticsCsv) {
  ScratchDir d;
  write(d / "kinetics_val.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "\"zumba\",abc,10,20,val,0\n"
        "\"air drumming\",xyz,0,10,val,0\n"
        "zumba,q_q,5,15,val,0\n");
  touch(d / "videos/zumba/abc_000010_000020.mp4");
  touch(d / "videos/air drumming/xyz_000000_000010.mkv");
  const auto m = data::read_manifest(d / "kinetics_val.csv");
  ASSERT_EQ(m.videos.size(), 3u);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"air drumming", "zumba"}));
  EXPECT_EQ(m.videos[0].id, "abc_000010_000020");
  EXPECT_EQ(m.videos[0].label, 1);
  EXPECT_EQ(m.videos[0].path, d / "videos/zumba/abc_000010_000020.mp4");
  EXPECT_EQ(m.videos[1].label, 0);
  EXPECT_EQ(m.videos[1].path, d / "videos/air drumming/xyz_000000_000010.mkv");
  EXPECT_EQ(m.videos[2].id, "q_q_000005_000015");  // no file: a guessed path, reported at extract

  write(d / "bad.csv",
        "label,youtube_id,time_start,time_end,split\nzumba,abc,10,20,val\nzumba,x,ten,20,val\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "bad.csv"), d / "bad.csv", "line 3", "time_start",
                    "ten");
  write(d / "short.csv", "label,youtube_id,time_start,time_end,split\nzumba,abc\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "short.csv"), "line 2", "fields");
}

TEST(Manifest, GenericCsvAndLists) {
  ScratchDir d;
  touch(d / "a/v1.mp4");
  touch(d / "b/v1.mp4");
  // path,label CSV with a header and integer labels.
  write(d / "list.csv", "path,label\na/v1.mp4,3\nb/v1.mp4,0\n");
  auto m = data::read_manifest(d / "list.csv");
  ASSERT_EQ(m.videos.size(), 2u);
  EXPECT_EQ(m.videos[0].id, "a__v1");  // folders kept in the id: the two v1 stay distinct
  EXPECT_EQ(m.videos[0].path, d / "a/v1.mp4");
  EXPECT_EQ(m.videos[0].label, 3);
  EXPECT_TRUE(m.class_names.empty());
  // Without a header, class names as labels → sorted names.
  write(d / "named.csv", "a/v1.mp4,walking\nb/v1.mp4,jumping\n");
  m = data::read_manifest(d / "named.csv");
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"jumping", "walking"}));
  EXPECT_EQ(m.videos[0].label, 1);
  // mmaction2 lines: `path label`, rawframes `path frames label`, plain paths, comments.
  write(d / "train.txt", "# comment\na/v1.mp4 2\n\nb/v1.mp4 120 5\n");
  m = data::read_manifest(d / "train.txt");
  ASSERT_EQ(m.videos.size(), 2u);
  EXPECT_EQ(m.videos[0].label, 2);
  EXPECT_EQ(m.videos[1].label, 5);
  write(d / "paths.txt", d / "a/v1.mp4" + "\n" + "b/v1.mp4\n");
  m = data::read_manifest(d / "paths.txt");
  EXPECT_EQ(m.videos[0].id, "v1");  // absolute path: the stem
  EXPECT_EQ(m.videos[0].label, -1);
  EXPECT_EQ(m.videos[1].path, d / "b/v1.mp4");
  // --videos resolves relative paths.
  write(d / "lists/rel.txt", "v1.mp4 0\n");
  m = data::read_manifest(d / "lists/rel.txt", d / "b");
  EXPECT_EQ(m.videos[0].path, d / "b/v1.mp4");
}

TEST(Manifest, MalformedListsGiveNamedErrors) {
  ScratchDir d;
  write(d / "bad.txt", "a.mp4 1\nb.mp4 one\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "bad.txt"), d / "bad.txt", "line 2", "'one'");
  write(d / "many.txt", "a.mp4 1 2 3\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "many.txt"), "line 1", "4 fields");
  write(d / "dup.txt", "a.mp4\nx/../a.mp4\na.mp4\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "dup.txt"), "line 3", "duplicate video id 'a'",
                    "line 1");
  write(d / "empty.txt", "\n\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "empty.txt"), d / "empty.txt", "empty");
  EXPECT_THROW_WITH(data::read_manifest(d / "nope.csv"), d / "nope.csv", "does not exist");
  write(d / "ok.txt", "a.mp4\n");
  EXPECT_THROW_WITH(data::read_manifest(d / "ok.txt", d / "no_such_dir"), "no_such_dir",
                    "videos folder");
}

TEST(Manifest, DirectoryOfVideos) {
  ScratchDir d;
  touch(d / "flat/b.webm");
  touch(d / "flat/a.mp4");
  touch(d / "flat/notes.txt");
  auto m = data::read_manifest(d / "flat");
  ASSERT_EQ(m.videos.size(), 2u);
  EXPECT_EQ(m.videos[0].id, "a");
  EXPECT_EQ(m.videos[0].label, -1);
  EXPECT_TRUE(m.class_names.empty());
  // One folder per class: the folder names are the classes.
  touch(d / "classes/run/x.mp4");
  touch(d / "classes/jump/y.mp4");
  touch(d / "classes/jump/z.mp4");
  m = data::read_manifest(d / "classes");
  ASSERT_EQ(m.videos.size(), 3u);
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"jump", "run"}));
  EXPECT_EQ(m.videos[0].id, "jump__y");
  EXPECT_EQ(m.videos[0].label, 0);
  EXPECT_EQ(m.videos[2].label, 1);
  std::filesystem::create_directories(d / "none");
  EXPECT_THROW_WITH(data::read_manifest(d / "none"), d / "none", "no video files");
}
