//! Questions about the article (`shared/seed/gpt-evolution-article.zh.txt`) and their answers,
//! taken from it, in English and Chinese. Each question has several phrasings: the first of each
//! language is held out for evaluation, the others are training data.

pub struct Fact {
    pub en_q: &'static [&'static str],
    pub en_a: &'static str,
    pub zh_q: &'static [&'static str],
    pub zh_a: &'static str,
}

pub const FACTS: &[Fact] = &[
    Fact {
        en_q: &[
            "What does GPT stand for?",
            "What is the full name of GPT?",
            "GPT is short for what?",
            "Expand the acronym GPT.",
        ],
        en_a: "Generative Pre-trained Transformer.",
        zh_q: &["GPT是什么的缩写？", "GPT的全称是什么？", "GPT三个字母代表什么？", "GPT全称叫什么？"],
        zh_a: "Generative Pre-trained Transformer，生成式预训练Transformer。",
    },
    Fact {
        en_q: &[
            "When was the Transformer proposed?",
            "When did the Transformer come out?",
            "Which paper introduced the Transformer, and when?",
            "When was Attention is all you need published?",
        ],
        en_a: "In June 2017, in Google's paper Attention is all you need.",
        zh_q: &[
            "Transformer是什么时候提出的？",
            "Transformer哪一年出现的？",
            "哪篇论文提出了Transformer？",
            "Attention is all you need是什么时候发表的？",
        ],
        zh_a: "2017年6月，Google的论文《Attention is all you need》。",
    },
    Fact {
        en_q: &[
            "When did GPT-1 come out?",
            "When was the first GPT released?",
            "In which year and month did OpenAI publish GPT?",
            "When was GPT-1 published?",
        ],
        en_a: "June 2018.",
        zh_q: &[
            "GPT-1是什么时候发布的？",
            "第一个GPT哪一年发布？",
            "OpenAI什么时候提出GPT模型？",
            "GPT-1哪年哪月出来的？",
        ],
        zh_a: "2018年6月。",
    },
    Fact {
        en_q: &[
            "When did GPT-2 come out?",
            "When was GPT-2 released?",
            "In which month was GPT-2 published?",
            "What year did GPT-2 appear?",
        ],
        en_a: "February 2019.",
        zh_q: &[
            "GPT-2是什么时候发布的？",
            "GPT-2哪一年出来的？",
            "GPT-2是哪年哪月发布的？",
            "OpenAI什么时候发布GPT-2？",
        ],
        zh_a: "2019年2月。",
    },
    Fact {
        en_q: &[
            "When did GPT-3 come out?",
            "When was GPT-3 released?",
            "In which month was GPT-3 published?",
            "What year did GPT-3 appear?",
        ],
        en_a: "May 2020.",
        zh_q: &[
            "GPT-3是什么时候发布的？",
            "GPT-3哪一年出来的？",
            "GPT-3是哪年哪月发布的？",
            "OpenAI什么时候发布GPT-3？",
        ],
        zh_a: "2020年5月。",
    },
    Fact {
        en_q: &[
            "When did InstructGPT come out?",
            "When was InstructGPT released?",
            "When was the InstructGPT paper published?",
            "What year did InstructGPT appear?",
        ],
        en_a: "February 2022.",
        zh_q: &[
            "InstructGPT是什么时候发布的？",
            "InstructGPT哪一年出来的？",
            "InstructGPT的论文什么时候发表？",
            "OpenAI什么时候公布InstructGPT？",
        ],
        zh_a: "2022年2月。",
    },
    Fact {
        en_q: &[
            "When did ChatGPT come out?",
            "When was ChatGPT released?",
            "On what date was ChatGPT launched?",
            "When could the public first try ChatGPT?",
        ],
        en_a: "November 30, 2022.",
        zh_q: &[
            "ChatGPT是什么时候发布的？",
            "ChatGPT哪天上线的？",
            "ChatGPT是哪年哪月哪日推出的？",
            "OpenAI什么时候推出ChatGPT？",
        ],
        zh_a: "2022年11月30日。",
    },
    Fact {
        en_q: &[
            "How many parameters does GPT-2 have?",
            "How big is GPT-2?",
            "What is the parameter count of GPT-2?",
            "How many parameters did the largest GPT-2 have?",
        ],
        en_a: "1.5 billion parameters.",
        zh_q: &["GPT-2有多少参数？", "GPT-2模型有多大？", "GPT-2的参数量是多少？", "最大的GPT-2有多少参数？"],
        zh_a: "15亿参数。",
    },
    Fact {
        en_q: &[
            "How many parameters does GPT-3 have?",
            "How big is GPT-3?",
            "What is the parameter count of GPT-3?",
            "How large is the GPT-3 model?",
        ],
        en_a: "175 billion parameters.",
        zh_q: &["GPT-3有多少参数？", "GPT-3模型有多大？", "GPT-3的参数量是多少？", "GPT-3一共多少参数？"],
        zh_a: "1750亿参数。",
    },
    Fact {
        en_q: &[
            "How much data was GPT-2 trained on?",
            "What data did GPT-2 use?",
            "How big was GPT-2's dataset?",
            "What was GPT-2 trained on?",
        ],
        en_a: "40 GB of text from 8 million web pages.",
        zh_q: &["GPT-2用了多少数据？", "GPT-2的训练数据有多大？", "GPT-2的数据集是什么？", "GPT-2用什么数据训练？"],
        zh_a: "40GB，800万个网页。",
    },
    Fact {
        en_q: &[
            "How much data was GPT-3 trained on?",
            "What data did GPT-3 use?",
            "How big was GPT-3's dataset?",
            "What was GPT-3 trained on?",
        ],
        en_a: "570 GB of text, filtered from 45 TB.",
        zh_q: &["GPT-3用了多少数据？", "GPT-3的训练数据有多大？", "GPT-3的数据集是什么？", "GPT-3用什么数据训练？"],
        zh_a: "570GB，从45TB文本中过滤得到。",
    },
    Fact {
        en_q: &[
            "What data was GPT-1 trained on?",
            "What dataset did the first GPT use?",
            "How much data did GPT-1 use?",
            "What was GPT-1 trained on?",
        ],
        en_a: "BooksCorpus, over 7000 unpublished books.",
        zh_q: &["GPT-1用了什么数据？", "第一个GPT的数据集是什么？", "GPT-1用了多少数据？", "GPT-1用什么数据训练？"],
        zh_a: "BooksCorpus，7000多本未出版的书。",
    },
    Fact {
        en_q: &[
            "What are the three steps of InstructGPT?",
            "How is InstructGPT trained?",
            "List InstructGPT's training steps.",
            "What steps turn GPT-3 into InstructGPT?",
        ],
        en_a: "Supervised fine-tuning, a reward model, then reinforcement learning (PPO).",
        zh_q: &[
            "InstructGPT的三个步骤是什么？",
            "InstructGPT是怎么训练的？",
            "InstructGPT训练分哪几步？",
            "GPT-3怎样变成InstructGPT？",
        ],
        zh_a: "监督微调，训练奖励模型，再用强化学习（PPO）优化。",
    },
    Fact {
        en_q: &[
            "Why does attention beat RNNs?",
            "What is wrong with RNNs?",
            "Why did the Transformer replace the RNN?",
            "What is the weakness of an RNN?",
        ],
        en_a: "An RNN reads words one by one, so it cannot run in parallel; attention sees all words at once.",
        zh_q: &["为什么注意力比RNN好？", "RNN有什么缺陷？", "为什么Transformer取代了RNN？", "RNN的问题是什么？"],
        zh_a: "RNN要按顺序一个一个算，不能并行；注意力同时看所有的词。",
    },
    Fact {
        en_q: &[
            "What was new in GPT-2?",
            "What idea did GPT-2 push?",
            "How did GPT-2 differ from GPT-1?",
            "What did GPT-2 change?",
        ],
        en_a: "It dropped fine-tuning and aimed at zero-shot, multitask learning.",
        zh_q: &["GPT-2有什么新变化？", "GPT-2主张什么？", "GPT-2和GPT-1有什么不同？", "GPT-2改了什么？"],
        zh_a: "去掉微调，主张零样本（zero-shot）和多任务学习。",
    },
    Fact {
        en_q: &[
            "What was new in GPT-3?",
            "What idea did GPT-3 push?",
            "How did GPT-3 differ from GPT-2?",
            "What did GPT-3 change?",
        ],
        en_a: "Few-shot learning: a task is learned from a few examples in the prompt.",
        zh_q: &["GPT-3有什么新变化？", "GPT-3主张什么？", "GPT-3和GPT-2有什么不同？", "GPT-3改了什么？"],
        zh_a: "少样本（few-shot）学习：从提示里的几个例子学会任务。",
    },
    Fact {
        en_q: &[
            "How many layers does GPT-3 have?",
            "How deep is GPT-3?",
            "How many Transformer layers are in GPT-3?",
            "What is the depth of GPT-3?",
        ],
        en_a: "96 layers.",
        zh_q: &["GPT-3有多少层？", "GPT-3有多深？", "GPT-3堆了几层Transformer？", "GPT-3的层数是多少？"],
        zh_a: "96层。",
    },
    Fact {
        en_q: &[
            "How many layers does GPT-2 have?",
            "How deep is GPT-2?",
            "How many Transformer layers are in GPT-2?",
            "What is the depth of GPT-2?",
        ],
        en_a: "48 layers.",
        zh_q: &["GPT-2有多少层？", "GPT-2有多深？", "GPT-2堆了几层Transformer？", "GPT-2的层数是多少？"],
        zh_a: "48层。",
    },
    Fact {
        en_q: &[
            "What is the difference between ChatGPT and InstructGPT?",
            "How is ChatGPT related to InstructGPT?",
            "Is ChatGPT the same as InstructGPT?",
            "What did ChatGPT add to InstructGPT?",
        ],
        en_a: "ChatGPT is InstructGPT trained over more rounds, with chat added.",
        zh_q: &[
            "ChatGPT和InstructGPT有什么区别？",
            "ChatGPT和InstructGPT是什么关系？",
            "ChatGPT和InstructGPT一样吗？",
            "ChatGPT比InstructGPT多了什么？",
        ],
        zh_a: "ChatGPT是多轮迭代训练的InstructGPT，加上了对话功能。",
    },
    Fact {
        en_q: &[
            "How is GPT different from BERT?",
            "What is the difference between GPT and BERT?",
            "Does GPT read both directions like BERT?",
            "GPT or BERT: which reads only the left context?",
        ],
        en_a: "GPT is a decoder that predicts from the words before; BERT is an encoder that reads both sides.",
        zh_q: &["GPT和BERT有什么不同？", "GPT和BERT的区别是什么？", "GPT像BERT一样双向吗？", "GPT和BERT谁只看上文？"],
        zh_a: "GPT只用解码器，根据上文预测；BERT用编码器，同时看上下文。",
    },
];

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
