#include "model/data/demo_corpus.h"

#include <gtest/gtest.h>

namespace i3 {
namespace {

TEST(DemoCorpus, BrownTagsBecomePlainSentences) {
  const std::string tagged =
      "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in "
      "Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti "
      "irregularities/nns took/vbd place/nn ./.\n\n\n\tIt/pps did/dod n't/* ,/, however/rb ;/. he/pps left/vbd "
      "(/( quietly/rb )/) ./.\n";
  EXPECT_EQ(brown_to_text(tagged),
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "
            "\"no evidence\" that any irregularities took place.\n"
            "It didn't, however; he left (quietly).\n");
}

TEST(DemoCorpus, NlpCorpusBuildsAreArraysOfSentences) {
  EXPECT_EQ(nlp_corpus_sentences(R"(["One.", "Two \"quoted\"."])", "doc-0.json"),
            (std::vector<std::string>{"One.", "Two \"quoted\"."}));
  EXPECT_THROW(nlp_corpus_sentences(R"({"a": 1})", "doc-1.json"), std::runtime_error);
  EXPECT_THROW(nlp_corpus_sentences(R"(["ok", 2])", "doc-2.json"), std::runtime_error);
}

}  // namespace
}  // namespace i3
