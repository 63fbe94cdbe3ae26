//! The word lists the task generators draw from. All hand-written for this project (no licence
//! beyond the project's own).

/// Characters for the Chinese variant of the character tasks: common, one BPE token or two each.
pub const HANZI: &[char] = &[
    '山', '水', '火', '木', '金', '土', '日', '月', '人', '口', '手', '心', '天', '地', '风', '云', '雨', '雪', '花',
    '草', '鸟', '鱼', '马', '牛', '羊', '猫', '狗', '龙', '虎', '春', '夏', '秋', '冬', '东', '南', '西', '北', '上',
    '下', '左', '右', '大', '小', '多', '少', '红', '白', '黑', '长', '高', '光', '石', '田', '米', '竹', '门', '书',
    '车', '家', '国',
];

/// Keys of the per-episode lookup table.
pub const KEYS: &[&str] = &[
    "cat", "dog", "sun", "moon", "tree", "fish", "bird", "rain", "snow", "star", "book", "door", "milk", "rice", "tea",
    "boat", "road", "hill", "lake", "rose", "king", "ship", "gold", "salt", "wind", "fire", "leaf", "seed", "bell",
    "coat", "cake", "lamp", "ring", "nest", "wolf", "bear", "frog", "duck", "goat", "lion", "horse", "apple", "bread",
    "chair", "cloud", "river", "stone", "table", "house", "green", "water", "light", "night", "music", "paper",
    "glass", "sheep", "tiger", "grape", "lemon", "honey", "sugar", "spoon", "plate", "train", "truck", "piano",
    "clock",
];

/// Subjects, degree words and adjectives of the templated reviews.
pub const EN_SUBJECTS: &[&str] = &[
    "the movie",
    "the food",
    "this book",
    "the hotel",
    "my day",
    "the song",
    "the game",
    "the service",
    "the trip",
    "the show",
    "the class",
    "the coffee",
    "the room",
    "the party",
    "the story",
    "the concert",
];
pub const EN_VERBS: &[&str] = &["was", "is", "felt", "seemed", "was really", "is so"];
pub const EN_POSITIVE: &[&str] =
    &["great", "wonderful", "lovely", "excellent", "fun", "good", "amazing", "pleasant", "delightful", "brilliant"];
pub const EN_NEGATIVE: &[&str] =
    &["terrible", "awful", "boring", "bad", "horrible", "sad", "dull", "poor", "disappointing", "annoying"];
pub const ZH_SUBJECTS: &[&str] = &[
    "这部电影",
    "这家饭店",
    "这本书",
    "今天的天气",
    "这首歌",
    "这次旅行",
    "这个游戏",
    "他们的服务",
    "这节课",
    "这杯茶",
    "这个房间",
    "这场音乐会",
];
pub const ZH_DEGREES: &[&str] = &["很", "非常", "真", "太", "特别"];
pub const ZH_POSITIVE: &[&str] = &["好", "棒", "精彩", "有趣", "美", "舒服", "可爱", "好看"];
pub const ZH_NEGATIVE: &[&str] = &["差", "糟糕", "无聊", "难看", "失望", "难受", "吵", "贵"];

/// (positive, negative) label words; each episode uses one pair.
pub const LABELS: &[(&str, &str)] = &[
    ("good", "bad"),
    ("positive", "negative"),
    ("yes", "no"),
    ("happy", "sad"),
    ("like", "dislike"),
    ("up", "down"),
    ("A", "B"),
    ("1", "0"),
    ("好", "坏"),
    ("正面", "负面"),
];
