"""Count text-encoder tokens, so report captions fit the encoder's context.

``TokenCounter("clip")`` uses open_clip's BPE tokenizer when it is importable
(``exact`` is then true). Without it, the count is an estimate built never to
undercount English clinical text, so a caption that fits the estimate fits the
real tokenizer:

- the text is pre-tokenised like CLIP (lower case; runs of letters; every digit
  alone, as CLIP splits numbers per digit; runs of other non-space characters;
  a contraction such as ``'s``, one CLIP token, is counted as ``'`` plus ``s``);
- a letter run listed in the built-in lexicon counts its exact number of BPE
  pieces (the lexicon holds about 2,300 frequent English words and radiology
  terms that are one CLIP token, and about 200 clinical words with their piece
  counts, all read off CLIP's vocabulary);
- any other ASCII word of ``n`` letters counts ``ceil(n / 2) + 1`` pieces (``1``
  for one letter); over some 60,000 English and technical words this bound
  was never below the real count, while it overcounts them about twofold;
- a word with non-ASCII letters counts one piece per UTF-8 byte, which BPE
  cannot exceed;
- a digit, a contraction and a common punctuation run (``.``, ``),``, ``...``)
  count one; any other punctuation run counts one per UTF-8 byte;
- plus 2 for the start and end tokens.

``TokenCounter("bert")`` loads a ``transformers`` tokenizer from a local
folder given as ``"bert:/path/to/tokenizer"``; otherwise it estimates WordPiece
generously (BERT splits each punctuation mark; every word not in the short list
of English function words counts ``ceil(n / 2) + 1``), plus 2 for
``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

DEFAULT_BUDGETS: dict[str, int] = {"clip": 77, "bert": 512}

_LETTERS = re.compile(r"[^\W\d_]+")
_DIGITS = re.compile(r"\d")
_PUNCT = re.compile(r"(?:[^\w\s]|_)+")
_BERT_PRETOKEN = re.compile(r"(?P<word>[^\W_]+)|(?P<punct>[^\w\s]|_)")
_PUNCT_ONE_TOKEN = ". , ; : ( ) - / % ' \" ? ! + = < > & # * [ ] ). ), .) ]. ], ): (. ... -- .. ,\" .\""
_ONE_TOKEN_PUNCT = frozenset(_PUNCT_ONE_TOKEN.split())


class TokenCounter:
    """Counts text-encoder tokens for ``kind`` ``"clip"`` or ``"bert"`` (``"bert:/dir"`` for a local tokenizer)."""

    def __init__(self, kind: str = "clip", budget: int | None = None) -> None:
        family, _, path = kind.partition(":")
        if family not in DEFAULT_BUDGETS:
            raise ValueError(
                f"tokenizer {kind!r} is not known; use 'clip', 'bert' or 'bert:/path/to/tokenizer'"
            )
        if path and family != "bert":
            raise ValueError(f"tokenizer {kind!r}: only 'bert' takes a local folder ('bert:/path')")
        self.kind = family
        self.budget: int = budget if budget is not None else DEFAULT_BUDGETS[family]
        if self.budget < 3:
            raise ValueError(f"token budget {self.budget} is too small; it includes the 2 special tokens")
        self._encode: Callable[[str], int] | None = None
        # A local BERT tokenizer is loaded now, so a bad folder fails before any work;
        # open_clip's (it imports torch, seconds) on the first count.
        self._loaded = family != "clip"
        if path:
            self._encode = _transformers_counter(path)

    def _load(self) -> None:
        if not self._loaded:
            self._encode = _open_clip_counter()
            self._loaded = True

    @property
    def exact(self) -> bool:
        """Counts come from the real tokenizer (else from an estimate)."""
        self._load()
        return self._encode is not None

    @property
    def additive(self) -> bool:
        # The estimates count each whitespace-separated piece on its own, so the
        # count of ``" ".join(parts)`` is the sum of the parts' counts less their
        # start/end tokens; a real tokenizer is not relied on to be.
        return not self.exact

    @property
    def describe(self) -> str:
        return f"{self.kind} {'tokenizer' if self.exact else 'estimate'}"

    def count(self, text: str) -> int:
        """Tokens ``text`` takes, start and end tokens included."""
        self._load()
        if self._encode is not None:
            return self._encode(text) + 2
        if self.kind == "clip":
            return _clip_estimate(text) + 2
        return _bert_estimate(text) + 2


def _open_clip_counter() -> Callable[[str], int] | None:
    try:
        from open_clip.tokenizer import SimpleTokenizer
    except Exception:
        return None
    tokenizer = _simple_tokenizer(SimpleTokenizer)
    return lambda text: len(tokenizer.encode(text))


@lru_cache(maxsize=1)
def _simple_tokenizer(cls: type) -> object:
    return cls()


def _transformers_counter(path: str) -> Callable[[str], int]:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError(
            f"tokenizer 'bert:{path}' needs transformers: pip install transformers"
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _unknown_word(word: str) -> int:
    if not word.isascii():
        return len(word.encode("utf-8"))
    n = len(word)
    return 1 if n == 1 else -(-n // 2) + 1


@lru_cache(maxsize=65536)
def _punct(run: str) -> int:
    return 1 if run in _ONE_TOKEN_PUNCT else len(run.encode("utf-8"))


@lru_cache(maxsize=65536)
def _clip_word(word: str) -> int:
    return _LEXICON.get(word) or _unknown_word(word)


def _clip_estimate(text: str) -> int:
    low = text.lower()
    return (
        sum(map(_clip_word, _LETTERS.findall(low)))
        + len(_DIGITS.findall(low))
        + sum(map(_punct, _PUNCT.findall(low)))
    )


def _bert_estimate(text: str) -> int:
    total = 0
    for m in _BERT_PRETOKEN.finditer(text):
        word = m.group("word")
        if word is None:
            total += len(m.group("punct").encode("utf-8"))
        elif word.lower() in _FUNCTION_WORDS:
            total += 1
        else:
            total += _unknown_word(word) if word.isascii() else len(word.encode("utf-8"))
    return total


_FUNCTION_TEXT = """a an and are as at be by for from has have in is it no not of on or the there
this to was were with without"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())

_SINGLE = """
a aa ab abdominal ability able abnormal about absent ac academy acc access ace ach ack acks
acoustic across act action active actor actually acy ad ada add ade adjacent ado ads africa
after afternoon again against age aged ages ago agram ague ah ahead ahmed ai ain air airport
aisha ak aka aker aking aks al ala album ald ale ali alia alian alist ality all alling alls ally
almost along already als also always am ama amazing ame america american ami aming ams an ana
ance ances ancy and anda ander anderson andy ane ang ange angular ani anna anne anniversary
announce announced annual ano another ans ant anta anti ants any anyone anything ap ape app
appearance appearing apple approximately april ar ara architectural ard ards are area areas ari
aring arly army around arrived ars art article artifact artifacts artist arts ary as ase ased
ases ash ask asked ason aspect assess ast asure asy at ate ated ately ates atest ath ather atic
ating ation ational ations ative ator ators ats attack au august australia available award
awards away awesome ay ays b ba baby back background bacterial bad bag bal ball ban band bank
bar baseball based basketball battle bay bb bby bc be beach beat beautiful beauty because become
bed been beer before behind being bel believe bell below ben ber berg berry bert bes best better
between bi bia big biggest bike bilateral bill bird birthday bit black bladder ble blog blood
blue bo board body book books booth border borders born both bow bowel bowl box boy boys brand
break breakfast breaking breast breasts breath bridge brilliant bring british brother brown bs
bts build building built bull burg bury bus business but buy by c ca cake caliber california
call callback called came camera camp campaign can canada cancer cap capsule car carcinoma card
cardiac cards care career carlos cars case cast castle cat catch category cats cause cc ce ced
celebrate celebrating cent center central centre ceo cept cer cervical ces cess ch chain
challenge champion championship chance change channel character characteristic chase chat che
check ched cheese chen cher ches chest chester chi chicago chicken chief child children china
ching chocolate choice chris christmas chronic church cia cial cil cing city ck cked ckey cks
cky class classic cle clean clear click clinical clock close cloud club cluster cm co coach
coast code coffee cold collection college color com combined come comes comet coming community
company comparison compatible competition complete complex complicated component composition
compression con concerning concert conference congrats congratulations consistent consolidation
contact continue contour contrast control cool core cortex cough could couldn council country
county couple course court cov cover cr craft crazy cream create created credit crew cross cs ct
cted ction culture cup current currently cus cut cute cy cystic da dad daily dan dance dark data
date dated daughter david day days dc dd de dead deal dear death debut december decreased ded
deep defined definite del delicious demonstrate demonstrated demonstrates den dence dense
density dent dents department der dered ders des design details dev development dge di dia
diabetes diameter did didn die died dies different digital ding dinner dio director discussed
disease distortion district dit dition dium dj dle dly do doe does doesn dog dogs doing dom don
done door doppler double down download dr draw drawing dream dress drink drive drop ds du duce
duct due during dy dynamic each early earth east easy eat ebay ece echo echoes ed edition eds
education ef ek el ela elena ell ella elling ello ells els else ely em ement ems en ena ence
ences ency end ended ending ends ened energy enge england english enhanced enhancement enhancing
ening enjoy enjoying enough ens ent ented enter ently ents ep episode eps er era ere ering ero
ers ership ert ery es ese est et ets ety eu europe evaluation eve even evening event events ever
every everyone everything evidence ex exam examination excited exclusive experience extension ey
eye eyes fa face facebook fact fair fall family famous fan fans fantastic far farm fashion fast
fat father fatty favorite favourite fb fc fe features featuring february feel feeling female fer
fest festival fever few ff fi fibrosis fic fied field fight film final finally find finding
findings fine finish finished fire first fish fit five fl flight florida flow flower flowers
fluid fly fm focal focus follow following food football for force ford fore forever forget form
formation former fort forward found foundation four fox france free french frequency fresh
friday friend friends from front fs ft fts ful full fully fun function funny future fy ga
gallery game games gaming gan garcia garden gas gate gave ge ged gen general george geous ger
gers ges gest get gets getting gg gger gh ght ghter ghting ghts gic gie gift ging girl girls
give gives giving gland glass gle global go goal goals god goes going gold golden golf gon gone
gonna good google gorgeous got government grace grade gram grand graves great green gress ground
group growth gs gue guess guest guide guided gun guy guys gy ha had haha hair half hall
halloween halo ham han hand hands happy hard harry has hat hate have haven having he head health
healthy hear heard heart held hello help helping hepatitis her here hero hey hi high hill him
his history hit ho hockey hold holiday home honor hood hope hospital host hot hotel hour hours
house how hr hs huge human ia ial ian ic ica ical ically ice ices ich icious ick icks ico ics
icy id idea identified ie ience ies if ig ight ign ii iii il ile iled iler iling ility ill illa
illed iller illing illion ills ils ily im image imaging impact important impression in ina
including increased incredible india indian industry ine ined ines iness inflammation
inflammatory info information ing inger inging ings ington ini ining ink ino ins inside inspired
inst instagram int interesting internal international interval interview into ints io ion ior ir
ird ire ired irregular is ise ised ish ising island ism isn issue issues ist it ita ital italy
ite ited ites ith ities iting ition itive its itting ity iv ja jack james jan jane january japan
jesus ji jo job jobs joe john johnson join jones journey jr july june just justice ka ke ked
keep ken ker kers kes ket kets key khan ki kid kidney kids kie killed kin kind king know known
ko ks ky la ladies lady lake land lands lane lar large largest las last late later lateral
latest launch law ld ldn le lead leader leaders leadership leading league learn learning least
leave led lee left legal legend len ler les less let lets level ley library lic lie lier lies
life light lights like likely limited lin linda line linear lines ling link lish list listen
listening little live liver lives living ll lo load lobe lobes local logy lol london long look
looking looks lopez lord los lost lot lots love loved lovely loves loving low lower ls lt luck
lump lunch lung lungs ly lywood ma mad made magazine magic mail main major make makes making mal
male man management manager mance many map mar march margaret margin margins maria mark market
marketing martin mary mas mass masses master match mate matt matter max may maybe mb mber md me
mean means measurement measures measuring med media medical meet meeting member members men ment
mental ments mer mercy mes message met metal mhz mi mic michael middle might mike mild mildly
miles million min mind mine ming mini minimal minister minutes miss missed missing mission mix
mixed mm mn mo mobile model moderate modern mom moment mon monday money month months mony moon
more morning most mother mountain move movie moving mp mr mri mrs ms mt much multiple mum murphy
museum music must my myself na nal name named nament nation national natural nature nd ne near
neck ned need needed needle needs negative nel ner ners ness net network never new news next ney
nguyen ni nia nice nie night ning nipple nis no node nodes non none noon normal north not note
noted nothing novak november now nowplaying ns nt number ny nyc o obesity october oes of off
offer office official oh oil ok ol ola old ole olivia ols om omg oms on ona onal once ond one
ones ong onic online only ons onto ony oo ood ool op open opening opportunity ops or order ore
orientation original oring ors ort ory os ot other others oud ough ought ould ound ounds our
ours ous ously out outside oval ovarian over ow own pa pack page pain painting pair pakistan pal
pancreatic panel paper parallel parents paris park part partially party pass past patel patent
patient pattern paul pay pc pcr pe peace ped pending people per perfect performance performed
peripheral person pes pet peter ph phic phone photo photography photos physician pic pick pics
picture pictures piece ping pink place plan planes plant play played player players playing ple
please plus pm pneumonia po point points police pool poor pop port portal position possible post
poster pouch power pped pper pping ppy practice pre present president press pretty price pride
print prior pro probable probably probe process products program project prominent prostate
protocol proud ps pt ption public put quality que queen questions quick quote ra race racing
radial radio radiology rafael rain ral ram ran range rare ray rd re reactive read reading ready
real really reason recent recommend recommended record red referred referring region regional
register relative release released remember ren renal rence rent rently report required rer res
research resolution rest results return retweet review ri ria rich rick ride ries right rights
ril rim ring ris rise river riverside ro road robert rock role roll ron room ror rose ross round
routine row royal rs rule run running russia ry ryan s sa sad safe safety said sale sales sam
same samuel san sat saturday save saw say says sc scattered scene school schools science scott
screen screening sday se sea search season second security sed see seeing seen segment sel self
selfie sen send senior sent senting september ser series serve service services ses session set
severe sey sh sha shadowing shape share sharing she shed shes shi shine shing ship ships shire
shirt shoes shoot shooting shop short shot should show showing shows si sia sic side sign signed
significant silver simple sin since sing single sion sions sir sis sister sit site sive six size
sk ski skills skin sky sleep sliding sm small smart smile smith smooth snow so social society
sofia soft sold solid some someone something son song soon sorry soul sound source south space
span speaking special spect spirit splay spoke sport sports spot spring square ss ssed sses
ssing ssion ssive st sta stable stadium staff stage stan stance stand standing star stars start
started starting starts state station stay ste sted step ster stern sters steve stic still stin
sting stock ston stone stop store stories storm story stration stream street strong stry sts
student students studio study stuff stunning sty style su success such suit summer summit sun
sunday sunset super superior support supporting sure surface surveillance sus suspicious sweet
sy syndrome system ta table tag tage tail tain tains take taken takes taking tal talk talking
talks tall taller target targeted tax taylor tball tbt tch td te tea teacher team teams tech
technology ted tee tel telephone tell ten ter ters tes test tests texas th than thank thanks
that the theatre their them then ther there thern thers these they thick thickness thing things
think thinking third this thomas those though thought thoughts three through ths thursday thy
thyroid ti tial tic tice tickets tics tie ties til tim time times ting tion tional tions tips
tissue tissues title tive tly to tober today together told tom tomorrow ton tonight too took top
tor tors tour tournament town tra track trade traffic train training travel treat tree tric trip
tro true trump trust try trying ts tt tta tte tting tty tube tuesday tumor tumour tune ture
tured tures turn turned turns tv tweet tweets twitter two ty type ual ue ues uk ultrasound um un
unch unchanged under uniform union united university until up update upper ur ura ure ures uring
ury us usa use used using ut ute utes v va val valley van vascular ve ved vein veins vel vely
vember vement ven ver verage vered vers versary verse version versity very ves vessel vessels
vey vi via video view views vii viii vil ville vin ving vintage viral vision visit visualization
vo voice volume vote vp vs wa wait waiting walk walking wall walls wanna want wanted wants war
ward wards warm wars was watch watching water way ways we wear wearing weather website wed
wedding wednesday week weekend weeks ween wei weight welcome well went wer were west what wheel
when where which while white who whole why wide wider width wife wild will williams win wind
wine wing winner winning wins winter wish with within without wn woman women won wonder
wonderful wood word words work working works workshop world worth would wow writing wrong ws wx
x xt xx ya yeah year years yed yer yers yes yesterday yet ying yl yn yo york you young your
yours yourself youth youtube ys za zation ze zed zen zer zes zing zone zy
"""
_MULTI = {
    2: """
    abscess accession adenoma adenopathy adrenal anterior aorta aortic appendix areola arterial
    ascites aspiration asymmetric atypical axilla axillary benign biliary biopsy blurring
    calcific calcification calcifications calcified caudate circumscribed coarse colloid
    confluent convex cortical covid cyst cysts diffuse diffusely dilated dilation distal dob
    ductal ducts echogenic echoic echotexture edema effusion enlarged enlargement fibrotic fna
    fnh foci fragmented gallbladder gallstones grayscale hepatic hilar hilum hypervascular
    hypoxia incidental inferior interrogation kidneys lakeview lesion lesions lobar lobular
    lymph malignancy malignant mammary markedly medial metastases metastasis metastatic
    moderately morison morphologic morphologically morphology mrn multiphase northgate oblique
    obscured okafor ovary pancreas papillary pleura pleural pocus posterior quadrant rads
    residual sagittal sars septations septum shortness sludge spleen splenic suggestive
    superficial testicular thickened thickening transverse universitario unremarkable urinary
    uterine uterus visualized
    """,
    3: """
    abdomen abnormality anechogenic anechoic avascular bronchogram bronchograms cirrhosis
    clavicle coarsened consolidations couinaud diaphragm dilatation dyspnea echogenicity
    effusions elastography electronically extrathyroidal follicular glandular hashimoto
    hemithorax hepatopetal heterogeneity heterogeneous heterogeneously homogeneous hyperplasia
    indeterminate indistinct intercostal intraductal intrahepatic irregularities isoechogenic
    isoechoic isthmus kowalski lobulated macrocalcification macrocalcifications mammogram
    microcalcification microcalcifications multinodular necrosis nodular nodule nodules palpable
    parenchyma pericardial perihilar predominantly punctate septated sonographic spiculated
    spongiform steatosis subcapsular subcentimeter subpleural technique thyroiditis transducer
    """,
    4: """
    craniocaudal curvilinear fibroadenoma fibroglandular haemangioma hemangioma hepatofugal
    hepatomegaly hyperechogenic hyperechoic hyperthyroidism hypoechogenic hypoechoic
    interstitial intranodular longitudinal microlobulated microlobulation nodularity parenchymal
    pneumothorax retroareolar sonographically splenomegaly vascularity vascularization
    """,
    5: """
    cholelithiasis hydronephrosis hypervascularity lymphadenopathy
    """,
    7: """
    choledocholithiasis
    """,
}


def _build_lexicon() -> dict[str, int]:
    table = dict.fromkeys(_SINGLE.split(), 1)
    for pieces, words in _MULTI.items():
        table.update(dict.fromkeys(words.split(), pieces))
    return table


_LEXICON: dict[str, int] = _build_lexicon()
