// Prompt lists shared by the tests and the benchmarks (written for this project): one module, so that a
// test and the benchmark that measures the same thing use the same text.

/** Fifty Spanish openings (proverbs and common starts) for agreement measurements, tests and benchmarks. */
export const SPANISH_PROMPTS: readonly string[] = [
  "La vida es",
  "El amor es",
  "Más vale pájaro en mano",
  "No hay mal que",
  "El que madruga",
  "A quien buen árbol se arrima",
  "El tiempo es",
  "La verdad es que",
  "Un hombre sabio",
  "Quien mucho abarca",
  "En boca cerrada",
  "El dinero no",
  "Dime con quién andas",
  "La mujer",
  "Todo lo que",
  "Nunca es tarde",
  "El mundo está lleno de",
  "Lo importante es",
  "Los amigos",
  "Cuando la pobreza entra por la puerta",
  "Hay que",
  "El hombre es el único animal que",
  "No es más rico",
  "La felicidad",
  "Si quieres",
  "Cada día",
  "La experiencia es",
  "El éxito",
  "Ojos que no ven",
  "Perro ladrador",
  "La política es",
  "El trabajo",
  "Un amigo es",
  "La ignorancia",
  "El problema de",
  "Dios",
  "Camarón que se duerme",
  "No dejes para mañana",
  "La música",
  "El matrimonio es",
  "Lo mejor de la vida",
  "Los niños",
  "El saber",
  "Quien ríe el último",
  "Las mujeres",
  "El arte de",
  "No hay nada",
  "Más vale tarde",
  "La suerte",
  "El silencio es",
];

/** `s` without its last word (a single word is kept), followed by " y". */
function shorter(s: string): string {
  const words = s.split(" ");
  return `${words.slice(0, Math.max(1, words.length - 1)).join(" ")} y`;
}

/** 100 prompts: the 50 openings, then each of them shortened (distinct, shorter contexts). */
export const SPANISH_PROMPTS_AND_SHORTER: readonly string[] = [...SPANISH_PROMPTS, ...SPANISH_PROMPTS.map(shorter)];

/** Ten short openings in the style of the fixture pair's training corpus (Spanish fortunes). */
export const FORTUNE_OPENINGS: readonly string[] = ["La amistad es", "El amor", "No hay", "La vida es", "Quien mucho", "El hombre", "Nunca se", "Más vale", "El que no", "Todo lo que"];

/** Prompts of varied length and kind (news, proverb, question, a long literary opening). */
export const VARIED_PROMPTS: readonly string[] = ["El Gobierno de España", "La vida es", "Más vale pájaro en mano", "¿Qué es la inteligencia artificial?", "En un lugar de la Mancha, de cuyo nombre no quiero acordarme,"];
