"""Teacher and class columns are refused in any spelling; legitimate names are not.

The lists are column names as they come out of Québec and North-American student
information systems, spreadsheets and public data sets (French and English).
"""

from __future__ import annotations

import pytest

from common.schema import COLUMNS, column_words, is_forbidden

TEACHER_AND_CLASS = [
    # snake_case, as before
    "teacher_id", "teacher_name", "class_id", "classe", "groupe", "groupe_id", "enseignant",
    "prof_nom", "Teacher_ID",
    # French headers with spaces, accents, apostrophes and punctuation
    "Enseignant titulaire", "Nom de l'enseignant", "Nom de l’enseignante", "Titulaire",
    "Groupe-repère", "Prof. titulaire", "No classe", "Numéro de groupe", "Groupe repère",
    "Code du groupe", "Enseignant(e)", "ENSEIGNANT RESSOURCE", "Professeur principal",
    "Professeure de français", "Titulaire du groupe", "Classe (no)", "N° de classe",
    "Groupe-matière", "Maître de classe", "grp_repere", "no_grp", "Enseignants",
    # camelCase, PascalCase and glued names
    "TeacherID", "teacherId", "ClassID", "classroomId", "HomeroomTeacher", "IDEnseignant",
    "NoClasse", "noclasse", "nomprof", "GroupeRepere", "GroupeID", "classeid", "TEACHERID",
    # English exports
    "Homeroom", "Class Section", "Instructor Name", "Teacher of record", "classes",
    "school_class_size", "Class size",
    # a qualified name that still points at one class
    "classe_accueil_no", "Groupe d'âge ID",
]

LEGITIMATE = [
    # near misses: other words that start like a forbidden one
    "classement", "Classement au concours", "classification", "profil", "Profil scolaire",
    "professionnel", "Suivi professionnel", "Langue d'enseignement", "enseignement",
    "regroupement", "groupage", "maitrise", "Progrès", "Programme", "Proportion",
    # qualified words with another meaning
    "classe_sociale", "Classe sociale", "classe d'accueil", "Groupe d'âge", "age_group",
    "Titulaire de l'autorité parentale", "titulaire_diplome",
    # real student columns of Québec-style and public extracts
    "no_fiche", "Code permanent", "École", "ecole", "Date de naissance", "Niveau",
    "cours_echoues", "failed_courses", "Cours échoués", "Moyenne générale", "Cohorte",
    "Note français", "Absences (jours)", "Plan d'intervention", "Langue maternelle",
    "Curricular units 1st sem (grade)", "Daytime/evening attendance", "Mother's qualification",
    "schoolsup", "famsup", "studytime", "G3", "Target", "Scholarship holder",
]


@pytest.mark.parametrize("name", TEACHER_AND_CLASS)
def test_teacher_and_class_names_are_refused_in_any_spelling(name: str) -> None:
    assert is_forbidden(name), (name, column_words(name))


@pytest.mark.parametrize("name", LEGITIMATE)
def test_legitimate_names_are_not_refused(name: str) -> None:
    assert not is_forbidden(name), (name, column_words(name))


def test_no_harmonised_column_is_refused() -> None:
    assert [c.name for c in COLUMNS if is_forbidden(c.name)] == []


def test_words_are_split_as_documented() -> None:
    assert column_words("Nom de l'enseignant") == ("nom", "enseignant")
    assert column_words("TeacherID") == ("teacher", "id")
    assert column_words("Groupe-repère") == ("groupe", "repere")
    assert column_words("IDEnseignant") == ("id", "enseignant")
