//! Questions about the article (`shared/seed/gpt-evolution-article.zh.txt`) and their answers,
//! taken from it, in English and Chinese.
//!
//! Most facts come in families — one question asked of several subjects (when did GPT-1, GPT-2,
//! … come out) — written as templates, so every wording is taught with several subjects. Each
//! subject holds out a different template (subject `s` holds out template `s`): the held-out
//! question is a wording never seen with that subject, but seen with others, so what the model must
//! get from the question is which subject it is about. (Holding out the same first wording for a
//! whole family taught the model that wording for one subject only: "When did GPT-1 come out?"
//! was answered with the Transformer's date, the one subject trained on "come out".) Facts
//! without a family keep a list of phrasings, the first held out.

use std::sync::OnceLock;

/// One question and its answer in both languages; `en_q[0]` and `zh_q[0]` are held out for
/// evaluation, the other phrasings are training data.
pub struct Fact {
    pub en_q: Vec<String>,
    pub en_a: &'static str,
    pub zh_q: Vec<String>,
    pub zh_a: &'static str,
}

/// A question asked of several subjects: templates with `{}` for the subject's name.
struct Family {
    en: &'static [&'static str],
    zh: &'static [&'static str],
    subjects: &'static [Subject],
}

struct Subject {
    /// The subject as the English and the Chinese templates name it.
    name: &'static str,
    zh_name: &'static str,
    en_a: &'static str,
    zh_a: &'static str,
    /// Extra training phrasings that only fit this subject.
    en_extra: &'static [&'static str],
    zh_extra: &'static [&'static str],
}

const fn subject(name: &'static str, en_a: &'static str, zh_a: &'static str) -> Subject {
    Subject { name, zh_name: name, en_a, zh_a, en_extra: &[], zh_extra: &[] }
}

impl Subject {
    const fn with_extra(self, en_extra: &'static [&'static str], zh_extra: &'static [&'static str]) -> Subject {
        Subject { en_extra, zh_extra, ..self }
    }
}

const FAMILIES: &[Family] = &[
    Family {
        en: &[
            "When did {} come out?",
            "When was {} released?",
            "When was {} published?",
            "In which month did {} appear?",
            "What year did {} appear?",
            "When was {} first introduced?",
            "What is the release date of {}?",
            "When did {} first appear?",
        ],
        zh: &[
            "{}是什么时候发布的？",
            "{}哪一年出来的？",
            "{}是哪年哪月发布的？",
            "{}是什么时候提出的？",
            "{}什么时候问世的？",
            "{}的发布时间是什么时候？",
            "{}是何时推出的？",
        ],
        subjects: &[
            Subject {
                zh_name: "Transformer",
                ..subject(
                    "the Transformer",
                    "In June 2017, in Google's paper Attention is all you need.",
                    "2017年6月，Google的论文《Attention is all you need》。",
                )
                .with_extra(
                    &[
                        "Which paper introduced the Transformer, and when?",
                        "When was Attention is all you need published?",
                    ],
                    &["哪篇论文提出了Transformer？", "Attention is all you need是什么时候发表的？"],
                )
            },
            subject("GPT-1", "June 2018.", "2018年6月。").with_extra(
                &["When was the first GPT released?", "In which year and month did OpenAI publish GPT?"],
                &["第一个GPT哪一年发布？", "OpenAI什么时候提出GPT模型？"],
            ),
            subject("GPT-2", "February 2019.", "2019年2月。"),
            subject("GPT-3", "May 2020.", "2020年5月。"),
            subject("InstructGPT", "February 2022.", "2022年2月。"),
            subject("ChatGPT", "November 30, 2022.", "2022年11月30日。").with_extra(
                &["On what date was ChatGPT launched?", "When could the public first try ChatGPT?"],
                &["ChatGPT哪天上线的？", "ChatGPT是哪年哪月哪日推出的？"],
            ),
        ],
    },
    Family {
        en: &[
            "How many parameters does {} have?",
            "How big is {}?",
            "What is the parameter count of {}?",
            "How large is the {} model?",
            "How many parameters are in {}?",
        ],
        zh: &["{}有多少参数？", "{}模型有多大？", "{}的参数量是多少？", "{}一共多少参数？", "{}的模型规模是多少？"],
        subjects: &[
            subject("GPT-2", "1.5 billion parameters.", "15亿参数。"),
            subject("GPT-3", "175 billion parameters.", "1750亿参数。"),
        ],
    },
    Family {
        en: &[
            "What data was {} trained on?",
            "How much data was {} trained on?",
            "What data did {} use?",
            "How big was {}'s dataset?",
            "What dataset did {} use?",
            "How large was the training data of {}?",
        ],
        zh: &[
            "{}用了什么数据？",
            "{}用了多少数据？",
            "{}的训练数据有多大？",
            "{}的数据集是什么？",
            "{}用什么数据训练？",
        ],
        subjects: &[
            subject("GPT-1", "BooksCorpus, over 7000 unpublished books.", "BooksCorpus，7000多本未出版的书。"),
            subject("GPT-2", "40 GB of text from 8 million web pages.", "40GB，800万个网页。"),
            subject("GPT-3", "570 GB of text, filtered from 45 TB.", "570GB，从45TB文本中过滤得到。"),
        ],
    },
    Family {
        en: &[
            "How many layers does {} have?",
            "How deep is {}?",
            "How many Transformer layers are in {}?",
            "What is the depth of {}?",
            "How many layers are stacked in {}?",
        ],
        zh: &["{}有多少层？", "{}有多深？", "{}堆了几层Transformer？", "{}的层数是多少？", "{}一共有几层？"],
        subjects: &[
            subject("GPT-1", "12 decoder layers.", "12层解码器。"),
            subject("GPT-2", "48 layers.", "48层。"),
            subject("GPT-3", "96 layers.", "96层。"),
        ],
    },
    Family {
        en: &[
            "What was new in {}?",
            "What idea did {} push?",
            "What did {} change?",
            "What is the key idea of {}?",
            "What was the main claim of {}?",
        ],
        zh: &["{}有什么新变化？", "{}主张什么？", "{}改了什么？", "{}的核心思想是什么？", "{}的主要主张是什么？"],
        subjects: &[
            subject(
                "GPT-1",
                "Unsupervised pre-training on lots of text, then supervised fine-tuning.",
                "先大量无监督预训练，再少量有监督微调。",
            ),
            subject(
                "GPT-2",
                "It dropped fine-tuning and aimed at zero-shot, multitask learning.",
                "去掉微调，主张零样本（zero-shot）和多任务学习。",
            )
            .with_extra(&["How did GPT-2 differ from GPT-1?"], &["GPT-2和GPT-1有什么不同？"]),
            subject(
                "GPT-3",
                "Few-shot learning: a task is learned from a few examples in the prompt.",
                "少样本（few-shot）学习：从提示里的几个例子学会任务。",
            )
            .with_extra(&["How did GPT-3 differ from GPT-2?"], &["GPT-3和GPT-2有什么不同？"]),
        ],
    },
];

/// Facts asked one way only: (English phrasings, answer, Chinese phrasings, answer), first held out.
type Single = (&'static [&'static str], &'static str, &'static [&'static str], &'static str);

const SINGLES: &[Single] = &[
    (
        &[
            "What does GPT stand for?",
            "What is the full name of GPT?",
            "GPT is short for what?",
            "Expand the acronym GPT.",
            "What do the letters GPT mean?",
            "What does the name GPT mean?",
        ],
        "Generative Pre-trained Transformer.",
        &[
            "GPT是什么的缩写？",
            "GPT的全称是什么？",
            "GPT三个字母代表什么？",
            "GPT全称叫什么？",
            "GPT这个名字是什么意思？",
        ],
        "Generative Pre-trained Transformer，生成式预训练Transformer。",
    ),
    (
        &[
            "What are the three steps of InstructGPT?",
            "How is InstructGPT trained?",
            "List InstructGPT's training steps.",
            "What steps turn GPT-3 into InstructGPT?",
            "What are InstructGPT's training steps?",
            "Which three steps train InstructGPT?",
        ],
        "Supervised fine-tuning, a reward model, then reinforcement learning (PPO).",
        &[
            "InstructGPT的三个步骤是什么？",
            "InstructGPT是怎么训练的？",
            "InstructGPT训练分哪几步？",
            "GPT-3怎样变成InstructGPT？",
            "InstructGPT的训练步骤是什么？",
            "训练InstructGPT要哪三步？",
        ],
        "监督微调，训练奖励模型，再用强化学习（PPO）优化。",
    ),
    (
        &[
            "Why does attention beat RNNs?",
            "What is wrong with RNNs?",
            "Why did the Transformer replace the RNN?",
            "What is the weakness of an RNN?",
            "Why is attention better than an RNN?",
            "What is the problem with RNNs?",
        ],
        "An RNN reads words one by one, so it cannot run in parallel; attention sees all words at once.",
        &[
            "为什么注意力比RNN好？",
            "RNN有什么缺陷？",
            "为什么Transformer取代了RNN？",
            "RNN的问题是什么？",
            "注意力为什么比RNN强？",
            "RNN的缺点是什么？",
        ],
        "RNN要按顺序一个一个算，不能并行；注意力同时看所有的词。",
    ),
    (
        &[
            "What is the difference between ChatGPT and InstructGPT?",
            "How is ChatGPT related to InstructGPT?",
            "Is ChatGPT the same as InstructGPT?",
            "What did ChatGPT add to InstructGPT?",
            "How does ChatGPT differ from InstructGPT?",
            "What is ChatGPT compared with InstructGPT?",
        ],
        "ChatGPT is InstructGPT trained over more rounds, with chat added.",
        &[
            "ChatGPT和InstructGPT有什么区别？",
            "ChatGPT和InstructGPT是什么关系？",
            "ChatGPT和InstructGPT一样吗？",
            "ChatGPT比InstructGPT多了什么？",
            "ChatGPT和InstructGPT有什么不同？",
            "ChatGPT跟InstructGPT的区别是什么？",
        ],
        "ChatGPT是多轮迭代训练的InstructGPT，加上了对话功能。",
    ),
    (
        &[
            "How is GPT different from BERT?",
            "What is the difference between GPT and BERT?",
            "Does GPT read both directions like BERT?",
            "GPT or BERT: which reads only the left context?",
            "How does GPT differ from BERT?",
            "Compare GPT and BERT.",
        ],
        "GPT is a decoder that predicts from the words before; BERT is an encoder that reads both sides.",
        &[
            "GPT和BERT有什么不同？",
            "GPT和BERT的区别是什么？",
            "GPT像BERT一样双向吗？",
            "GPT和BERT谁只看上文？",
            "GPT跟BERT有什么区别？",
            "比较一下GPT和BERT。",
        ],
        "GPT只用解码器，根据上文预测；BERT用编码器，同时看上下文。",
    ),
];

/// Every fact: each family subject (its held-out template first), then the singles.
pub fn facts() -> &'static [Fact] {
    static FACTS: OnceLock<Vec<Fact>> = OnceLock::new();
    FACTS.get_or_init(|| {
        let mut all = Vec::new();
        for family in FAMILIES {
            for (s, sub) in family.subjects.iter().enumerate() {
                let phrasings = |templates: &[&str], name: &str, extra: &[&str]| -> Vec<String> {
                    let n = templates.len();
                    let mut q: Vec<String> = (0..n).map(|i| templates[(s + i) % n].replace("{}", name)).collect();
                    q.extend(extra.iter().map(|e| e.to_string()));
                    q
                };
                all.push(Fact {
                    en_q: phrasings(family.en, sub.name, sub.en_extra),
                    en_a: sub.en_a,
                    zh_q: phrasings(family.zh, sub.zh_name, sub.zh_extra),
                    zh_a: sub.zh_a,
                });
            }
        }
        for (en_q, en_a, zh_q, zh_a) in SINGLES {
            let owned = |q: &[&str]| q.iter().map(|s| s.to_string()).collect();
            all.push(Fact { en_q: owned(en_q), en_a, zh_q: owned(zh_q), zh_a });
        }
        all
    })
}

/// Greetings and small talk: (user, assistant), en and zh. One reply per intent and language,
/// several phrasings each, so a held-out phrasing (by a hash of its text) asks a known intent.
pub const SMALL_TALK: &[(&str, &str)] = &[
    ("Hello", HELLO_EN),
    ("Hi", HELLO_EN),
    ("Hello!", HELLO_EN),
    ("Hi there", HELLO_EN),
    ("Hey", HELLO_EN),
    ("Good morning", HELLO_EN),
    ("Good evening", HELLO_EN),
    ("Hello there", HELLO_EN),
    ("Hey there", HELLO_EN),
    ("Hi!", HELLO_EN),
    ("Hey!", HELLO_EN),
    ("Hi, how are you?", HELLO_EN),
    ("Good afternoon", HELLO_EN),
    ("Greetings", HELLO_EN),
    ("Howdy", HELLO_EN),
    ("Hiya", HELLO_EN),
    ("Hello, wgpt", HELLO_EN),
    ("Who are you?", WHO_EN),
    ("What are you?", WHO_EN),
    ("What is your name?", WHO_EN),
    ("Tell me about yourself.", WHO_EN),
    ("Introduce yourself.", WHO_EN),
    ("Thank you", THANKS_EN),
    ("Thanks!", THANKS_EN),
    ("Thanks a lot", THANKS_EN),
    ("Thank you very much", THANKS_EN),
    ("Bye", BYE_EN),
    ("Goodbye", BYE_EN),
    ("See you", BYE_EN),
    ("See you later", BYE_EN),
    ("你好", HELLO_ZH),
    ("您好", HELLO_ZH),
    ("你好！", HELLO_ZH),
    ("嗨", HELLO_ZH),
    ("哈喽", HELLO_ZH),
    ("早上好", HELLO_ZH),
    ("晚上好", HELLO_ZH),
    ("下午好", HELLO_ZH),
    ("你好呀", HELLO_ZH),
    ("嗨，你好", HELLO_ZH),
    ("大家好", HELLO_ZH),
    ("你是谁？", WHO_ZH),
    ("你是什么？", WHO_ZH),
    ("你叫什么名字？", WHO_ZH),
    ("介绍一下你自己。", WHO_ZH),
    ("请做个自我介绍。", WHO_ZH),
    ("谢谢", THANKS_ZH),
    ("谢谢你", THANKS_ZH),
    ("多谢", THANKS_ZH),
    ("非常感谢", THANKS_ZH),
    ("再见", BYE_ZH),
    ("拜拜", BYE_ZH),
    ("回头见", BYE_ZH),
    ("下次见", BYE_ZH),
];
const HELLO_EN: &str = "Hello! I am wgpt, a tiny GPT. Ask me about GPT's history.";
const WHO_EN: &str = "I am wgpt, a tiny GPT trained in this project, from pre-training to PPO.";
const THANKS_EN: &str = "You are welcome!";
const BYE_EN: &str = "Goodbye!";
const HELLO_ZH: &str = "你好！我是wgpt，一个很小的GPT。可以问我GPT的历史。";
const WHO_ZH: &str = "我是wgpt，在这个项目里从预训练一直训练到PPO的小GPT。";
const THANKS_ZH: &str = "不客气！";
const BYE_ZH: &str = "再见！";

/// Questions the model cannot know the answer to: it says so, in the question's language.
pub const UNKNOWABLE_EN: &[&str] = &[
    "What is the weather today?",
    "Will it rain tomorrow?",
    "What time is it now?",
    "What is the price of gold today?",
    "Who will win the next election?",
    "What is today's news?",
    "Will the stock market go up tomorrow?",
    "What is my name?",
    "Where am I right now?",
    "What will happen next year?",
    "What is the score of today's game?",
    "What did I eat for breakfast?",
];
pub const UNKNOWABLE_ZH: &[&str] = &[
    "今天天气怎么样？",
    "明天会下雨吗？",
    "现在几点了？",
    "今天金价多少？",
    "下次选举谁会赢？",
    "今天有什么新闻？",
    "明天股票会涨吗？",
    "我叫什么名字？",
    "我现在在哪里？",
    "明年会发生什么？",
    "今天比赛的比分是多少？",
    "我早饭吃了什么？",
];
pub const REFUSAL_EN: &str = "I cannot know that: I have no internet, no clock and only know what I was trained on.";
pub const REFUSAL_ZH: &str = "我无法知道：我不能上网，也没有时钟，只知道训练时学过的内容。";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn answers_are_unique_and_every_fact_has_three_taught_phrasings_besides_the_held_out_one() {
        let mut answers = HashSet::new();
        for f in facts() {
            assert!(answers.insert(f.en_a) && answers.insert(f.zh_a), "answer used twice: {}", f.en_a);
            for q in [&f.en_q, &f.zh_q] {
                let distinct: HashSet<&String> = q.iter().collect();
                assert_eq!(distinct.len(), q.len(), "a phrasing repeats: {q:?}");
                assert!(q.len() >= 4, "{q:?}");
            }
        }
    }

    #[test]
    fn each_held_out_family_question_is_worded_as_training_asks_another_subject() {
        let mut at = 0;
        for family in FAMILIES {
            let facts = &facts()[at..at + family.subjects.len()];
            at += family.subjects.len();
            for (s, sub) in family.subjects.iter().enumerate() {
                for (held_out, name, lang) in [(&facts[s].en_q[0], sub.name, 0), (&facts[s].zh_q[0], sub.zh_name, 1)] {
                    assert!(held_out.contains(name), "{held_out:?} does not name {name}");
                    let taught_elsewhere = family.subjects.iter().enumerate().any(|(o, other)| {
                        let (other_name, taught) =
                            if lang == 0 { (other.name, &facts[o].en_q) } else { (other.zh_name, &facts[o].zh_q) };
                        o != s && taught[1..].contains(&held_out.replace(name, other_name))
                    });
                    assert!(taught_elsewhere, "{held_out:?}: its wording is never taught");
                }
            }
        }
    }
}
